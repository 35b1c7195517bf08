"""brainmvp-nnunet: BrainMVP multi-modal pre-training inside nnU-Net v2.

The three top-level folders dataset_conversion/, planners/ and trainers/ are installed as
sub-packages of brainmvp_nnunet (never as bare top-level packages: a PyPI package named
`planners` exists).
"""

from setuptools import find_packages, setup

MAPPED = {"dataset_conversion", "planners", "trainers"}

packages = find_packages(include=["brainmvp_nnunet", "brainmvp_nnunet.*"])
package_dir = {}
for folder in sorted(MAPPED):
    for sub in [""] + [f".{p}" for p in find_packages(where=folder)]:
        packages.append(f"brainmvp_nnunet.{folder}{sub}")
    package_dir[f"brainmvp_nnunet.{folder}"] = folder

setup(
    name="brainmvp-nnunet",
    version="0.1.0",
    description="BrainMVP multi-modal pre-training (CVPR 2025) for nnU-Net v2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages,
    package_dir=package_dir,
    install_requires=[
        "torch>=2.4,!=2.9.*",
        "torchvision",
        "nnunetv2>=2.8.1,<2.9",
        "batchgenerators>=0.25",
        "SimpleITK>=2.2",
        "nibabel>=5",
        "numpy>=1.24",
        "scipy>=1.10",
        "nilearn>=0.10",
        "matplotlib>=3.7",
    ],
    entry_points={"console_scripts": ["brainmvp=brainmvp_nnunet.cli:main"]},
)
