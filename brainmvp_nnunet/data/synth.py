"""Synthetic multi-parametric brain MRI from real anatomy and tissue physics.

A subject is made in two steps, as TorchIO separates random from deterministic transforms:

* :func:`draw_subject` draws every random quantity (tissue relaxation jitter, deformation, tumour
  geometry and compartments, bias fields, noise level, dropped modalities) into a
  :class:`SubjectParams` record;
* :func:`render_subject` turns an :class:`~brainmvp_nnunet.data.anatomy.Anatomy` and those
  parameters into co-registered images and a label map, deterministically.

Contrast comes from BrainWeb T1/T2/PD values per tissue through spin-echo and inversion-recovery
signal equations (see ``tissue-parameters`` in the design references); partial volume mixes the
per-tissue signals by tissue probability. Labels follow BraTS 2023: 1 necrosis (NCR), 2 edema (ED),
3 enhancing tumour (ET). Images are skull-stripped like BraTS: the background is exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from brainmvp_nnunet.data.anatomy import Anatomy
from brainmvp_nnunet.errors import SynthError

# BraTS / SRI24 field of view in mm (x, y, z): the canonical grid of BrainMVP's templates.
FIELD_OF_VIEW_MM = (240.0, 240.0, 155.0)
RENDERABLE_MODALITIES = ("t1", "t1c", "t2", "flair", "pd")
LABEL_NCR, LABEL_ED, LABEL_ET = 1, 2, 3


@dataclass(frozen=True)
class Tissue:
    """Relaxation times (ms) and relative proton density of one tissue."""

    t1: float
    t2: float
    pd: float


# BrainWeb (brainweb-dl, brainweb1_tissues.csv), about 1.5 T.
HEALTHY_TISSUES = {
    "csf": Tissue(t1=2569.0, t2=329.0, pd=1.00),
    "gm": Tissue(t1=833.0, t2=83.0, pd=0.86),
    "wm": Tissue(t1=500.0, t2=70.0, pd=0.77),
}
# Literature ranges at 1.5 T: (T1 range, T2 range, PD range).
TUMOUR_RANGES = {
    "ed": ((1100.0, 1400.0), (150.0, 250.0), (0.90, 0.95)),
    "et": ((1000.0, 1300.0), (100.0, 140.0), (0.85, 0.90)),
    "ncr": ((1800.0, 2600.0), (250.0, 400.0), (0.95, 1.00)),
}
ET_T1_AFTER_GADOLINIUM = (350.0, 600.0)
# Low-grade tumours (the class signal of the synthetic classification task): little or no contrast
# enhancement (post-contrast ET T1 stays 85-100 % of its native value) and a much smaller necrosis.
GRADES = ("high", "low")
LOW_GRADE_ET_T1_RATIO = (0.85, 1.0)
LOW_GRADE_NECROSIS_SCALE = 0.4


@dataclass(frozen=True)
class Sequence:
    """Acquisition parameters (ms). ``ti`` set means inversion recovery, else spin echo."""

    tr: float
    te: float
    ti: float | None = None


def spin_echo(pd: np.ndarray | float, t1: np.ndarray | float, t2: np.ndarray | float,
              tr: float, te: float) -> np.ndarray | float:
    """Spin-echo magnitude S = PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def inversion_recovery(pd: np.ndarray | float, t1: np.ndarray | float, t2: np.ndarray | float,
                       tr: float, te: float, ti: float) -> np.ndarray | float:
    """Inversion-recovery magnitude S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)."""
    return pd * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)


def null_inversion_time(t1: float, tr: float) -> float:
    """Inversion time that nulls a tissue of longitudinal relaxation ``t1``: T1 ln(2 / (1 + e^(-TR/T1)))."""
    return float(t1 * np.log(2.0 / (1.0 + np.exp(-tr / t1))))


SEQUENCES = {
    "t1": Sequence(tr=500.0, te=10.0),
    "t1c": Sequence(tr=500.0, te=10.0),
    "t2": Sequence(tr=4000.0, te=100.0),
    "pd": Sequence(tr=8000.0, te=10.0),  # long TR as in IXI's PD (TR about 8 s): CSF > GM > WM
    "flair": Sequence(tr=9000.0, te=120.0, ti=null_inversion_time(HEALTHY_TISSUES["csf"].t1, 9000.0)),
}


def tissue_signal(modality: str, tissue: Tissue, flair_ti: float | None = None) -> float:
    """Signal of one pure tissue in one modality (T1c uses the tissue's own, post-contrast T1)."""
    seq = SEQUENCES[modality]
    if seq.ti is not None:
        return float(inversion_recovery(tissue.pd, tissue.t1, tissue.t2, seq.tr, seq.te,
                                        flair_ti if flair_ti is not None else seq.ti))
    return float(spin_echo(tissue.pd, tissue.t1, tissue.t2, seq.tr, seq.te))


@dataclass(frozen=True)
class TumourParams:
    """A tumour: centre (mm, world), radii of the nested compartments (mm) and a shape-noise field."""

    centre_mm: tuple[float, float, float]
    r_ncr: float
    r_et: float
    r_ed: float
    shape_noise: np.ndarray  # coarse random field, upsampled to modulate the radii
    compartments: dict[str, Tissue]
    et_t1_post: float


@dataclass(frozen=True)
class SubjectParams:
    """Every random quantity of one synthetic subject (the output of :func:`draw_subject`)."""

    tissues: dict[str, Tissue]
    scale: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    displacement: np.ndarray  # coarse (3, n, n, n) field in mm
    tumour: TumourParams | None
    bias: dict[str, np.ndarray]  # per modality, coefficients of a quadratic polynomial field
    snr: float
    noise_seed: int
    flair_ti: float
    available: tuple[str, ...]
    grade: str | None = None  # "high" / "low" when SynthConfig.grades, else None


@dataclass(frozen=True)
class SynthConfig:
    """Options of the generator (what is drawn per subject and on which grid it is rendered)."""

    spacing: float = 1.0
    modalities: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
    with_tumour: bool = True
    missing_rate: float = 0.0
    jitter: float = 0.04  # relative spread of the healthy tissue parameters
    max_displacement_mm: float = 3.0
    snr_range: tuple[float, float] = (15.0, 40.0)
    bias_strength: float = 0.15
    grades: bool = False  # draw a tumour grade per subject (changes enhancement and necrosis)

    def validate(self) -> None:
        """Raise :class:`SynthError` for options that cannot produce a subject."""
        unknown = [m for m in self.modalities if m not in RENDERABLE_MODALITIES]
        if unknown:
            raise SynthError(f"cannot render modalities {unknown}; renderable: {list(RENDERABLE_MODALITIES)}")
        if not self.modalities:
            raise SynthError("at least one modality must be rendered")
        if not 0.5 <= self.spacing <= 8.0:
            raise SynthError(f"spacing {self.spacing} mm is outside the supported range 0.5-8 mm")
        if not 0.0 <= self.missing_rate < 1.0:
            raise SynthError(f"missing rate {self.missing_rate} must be in [0, 1)")


@dataclass(frozen=True)
class Subject:
    """Rendered images (float32, x/y/z order), label map (uint8) and the grid's affine."""

    images: dict[str, np.ndarray]
    label: np.ndarray | None
    affine: np.ndarray
    params: SubjectParams


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def draw_subject(rng: np.random.Generator, anatomy: Anatomy, config: SynthConfig) -> SubjectParams:
    """Draw the random parameters of one subject (no image work happens here)."""
    config.validate()
    tissues = {name: Tissue(t1=t.t1 * (1 + config.jitter * rng.standard_normal()),
                            t2=t.t2 * (1 + config.jitter * rng.standard_normal()),
                            pd=min(1.0, t.pd * (1 + config.jitter / 2 * rng.standard_normal())))
               for name, t in HEALTHY_TISSUES.items()}
    scale = tuple(float(s) for s in rng.uniform(0.92, 1.08, size=3))
    rotation = tuple(float(a) for a in rng.uniform(-6.0, 6.0, size=3))
    displacement = rng.standard_normal((3, 5, 5, 5)) * config.max_displacement_mm / 2.0
    tumour = _draw_tumour(rng, anatomy, config) if config.with_tumour else None
    bias = {m: rng.uniform(-1.0, 1.0, size=10) for m in config.modalities}
    snr = _uniform(rng, config.snr_range)
    noise_seed = int(rng.integers(0, 2**31 - 1))
    available = tuple(m for m in config.modalities if rng.uniform() >= config.missing_rate)
    if not available:  # a subject always keeps one modality
        available = (config.modalities[int(rng.integers(len(config.modalities)))],)
    grade = None
    if config.grades and tumour is not None:
        # drawn last, so that without grades the stream (and every existing release's bytes) is unchanged
        grade, tumour = _draw_grade(rng, tumour)
    return SubjectParams(tissues=tissues, scale=scale, rotation_deg=rotation, displacement=displacement,
                         tumour=tumour, bias=bias, snr=snr, noise_seed=noise_seed,
                         flair_ti=null_inversion_time(tissues["csf"].t1, SEQUENCES["flair"].tr),
                         available=available, grade=grade)


def _draw_grade(rng: np.random.Generator, tumour: TumourParams) -> tuple[str, TumourParams]:
    """High grade (p = 0.5) keeps the tumour as drawn; low grade weakens enhancement and shrinks necrosis."""
    if rng.uniform() < 0.5:
        return "high", tumour
    et_t1_post = tumour.compartments["et"].t1 * _uniform(rng, LOW_GRADE_ET_T1_RATIO)
    return "low", replace(tumour, r_ncr=tumour.r_ncr * LOW_GRADE_NECROSIS_SCALE, et_t1_post=et_t1_post)


def _draw_tumour(rng: np.random.Generator, anatomy: Anatomy, config: SynthConfig) -> TumourParams:
    # Shell thickness of at least 2.5 voxels keeps the enhancing rim closed around the necrosis
    # even after the radius modulation (down to -25 %) and resampling.
    rim = max(3.0, 2.5 * config.spacing / 0.75)
    r_ncr = _uniform(rng, (max(3.0, config.spacing), 10.0))
    r_et = r_ncr + _uniform(rng, (rim, rim + 6.0))
    r_ed = r_et + _uniform(rng, (8.0, 22.0))
    # Centre in white matter, deep enough that the whole core (with modulation) stays in the brain;
    # shrink the tumour until such a place exists.
    for _ in range(20):
        candidates = np.argwhere((anatomy.wm > 0.5) & (anatomy.depth_mm > 1.35 * r_et + 2 * config.spacing + 3.0))
        if len(candidates):
            break
        r_ncr, r_et, r_ed = 0.85 * r_ncr, r_ncr * 0.85 + (r_et - r_ncr), 0.85 * r_ed
    else:
        raise SynthError("no tumour position deep enough in the brain for the drawn tumour size")
    voxel = candidates[int(rng.integers(len(candidates)))]
    centre = tuple(float(c) for c in (anatomy.affine @ np.append(voxel, 1.0))[:3])
    compartments = {name: Tissue(t1=_uniform(rng, t1r), t2=_uniform(rng, t2r), pd=_uniform(rng, pdr))
                    for name, (t1r, t2r, pdr) in TUMOUR_RANGES.items()}
    return TumourParams(centre_mm=centre, r_ncr=r_ncr, r_et=r_et, r_ed=r_ed,
                        shape_noise=rng.uniform(-1.0, 1.0, size=(6, 6, 6)),
                        compartments=compartments, et_t1_post=_uniform(rng, ET_T1_AFTER_GADOLINIUM))


def output_grid(anatomy: Anatomy, spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the BraTS-sized field of view at ``spacing``, centred on the brain."""
    shape = tuple(int(round(f / spacing)) for f in FIELD_OF_VIEW_MM)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    centre_vox = (np.array(shape) - 1) / 2.0
    affine[:3, 3] = anatomy.brain_centre_mm - spacing * centre_vox
    return shape, affine


def _rotation_matrix(degrees: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _upsample(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth (cubic) upsampling of a coarse random field to ``shape``."""
    zoom = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    return ndimage.zoom(coarse, zoom, order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]


def _world_coordinates(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    return (np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), grid)
            + affine[:3, 3, None, None, None].astype(np.float32))


def _sample_anatomy(anatomy: Anatomy, params: SubjectParams, world: np.ndarray) -> dict[str, np.ndarray]:
    """Warp the template's tissue maps into the subject's space (scaling, rotation, smooth deformation)."""
    centre = anatomy.brain_centre_mm.astype(np.float32)
    rot_inv = _rotation_matrix(params.rotation_deg).T.astype(np.float32)
    rel = world - centre[:, None, None, None]
    rel = np.einsum("ij,j...->i...", rot_inv, rel) / np.asarray(params.scale, dtype=np.float32)[:, None, None, None]
    disp = np.stack([_upsample(params.displacement[i], world.shape[1:]) for i in range(3)]).astype(np.float32)
    template_world = rel + centre[:, None, None, None] + disp
    inv = np.linalg.inv(anatomy.affine).astype(np.float32)
    coords = np.einsum("ij,j...->i...", inv[:3, :3], template_world) + inv[:3, 3, None, None, None]
    maps = {name: ndimage.map_coordinates(getattr(anatomy, name), coords, order=1, mode="constant", cval=0.0)
            for name in ("gm", "wm", "csf")}
    mask = ndimage.map_coordinates(anatomy.mask.astype(np.float32), coords, order=1, mode="constant") > 0.5
    for name in maps:
        maps[name] = np.where(mask, maps[name], 0.0).astype(np.float32)
    maps["mask"] = mask
    return maps


def tumour_labels(tumour: TumourParams, world: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BraTS-2023 label map of nested compartments: NCR (1) inside ET (3) inside edema (2)."""
    rel = world - np.asarray(tumour.centre_mm, dtype=np.float32)[:, None, None, None]
    dist = np.sqrt((rel**2).sum(0))
    # The shape noise lives on a small lattice around the tumour (so it deforms the tumour, not the
    # head); one modulation for all shells keeps them nested by construction.
    n = np.asarray(tumour.shape_noise.shape, dtype=np.float32)
    extent = 2.6 * tumour.r_ed
    coords = rel / extent * (n[:, None, None, None] - 1) + (n[:, None, None, None] - 1) / 2
    noise = ndimage.map_coordinates(tumour.shape_noise, coords, order=3, mode="nearest")
    q = dist / (1.0 + 0.25 * np.clip(noise, -1.0, 1.0))
    label = np.zeros(dist.shape, dtype=np.uint8)
    label[q < tumour.r_ed] = LABEL_ED
    label[q < tumour.r_et] = LABEL_ET
    label[q < tumour.r_ncr] = LABEL_NCR
    label[~mask] = 0
    return label


def _bias_field(coefficients: np.ndarray, shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """Smooth multiplicative field from a quadratic polynomial in normalised coordinates, within +/- strength."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x * x, y * y, z * z, x * y * z]
    poly = sum(c * t for c, t in zip(coefficients, terms, strict=True))
    poly = poly / max(float(np.abs(poly).max()), 1e-6)
    return (1.0 + strength * poly).astype(np.float32)


def render_subject(anatomy: Anatomy, params: SubjectParams, config: SynthConfig) -> Subject:
    """Render the images and label map of a subject drawn by :func:`draw_subject` (deterministic)."""
    shape, affine = output_grid(anatomy, config.spacing)
    world = _world_coordinates(shape, affine)
    maps = _sample_anatomy(anatomy, params, world)
    mask = maps["mask"]
    label = tumour_labels(params.tumour, world, mask) if params.tumour is not None else None
    del world

    noise_rng = np.random.default_rng(params.noise_seed)
    images: dict[str, np.ndarray] = {}
    for modality in config.modalities:
        signal = sum(maps[t] * tissue_signal(modality, params.tissues[t], params.flair_ti)
                     for t in ("csf", "gm", "wm"))
        if label is not None:
            for value, name in ((LABEL_ED, "ed"), (LABEL_ET, "et"), (LABEL_NCR, "ncr")):
                tissue = params.tumour.compartments[name]
                if modality == "t1c" and name == "et":  # gadolinium shortens T1 of enhancing tumour
                    tissue = Tissue(t1=params.tumour.et_t1_post, t2=tissue.t2, pd=tissue.pd)
                signal = np.where(label == value, tissue_signal(modality, tissue, params.flair_ti), signal)
        signal = signal * _bias_field(params.bias[modality], shape, config.bias_strength)
        sigma = float(signal[mask].mean()) / params.snr
        # Rician noise: magnitude of the signal plus complex Gaussian noise; background stays 0
        # (skull-stripped, as BraTS), so nnU-Net's nonzero crop sees the brain.
        real = signal + sigma * noise_rng.standard_normal(shape, dtype=np.float32)
        imag = sigma * noise_rng.standard_normal(shape, dtype=np.float32)
        magnitude = np.sqrt(real * real + imag * imag)
        if modality in params.available:
            images[modality] = np.where(mask, magnitude, 0.0).astype(np.float32)
    return Subject(images=images, label=label, affine=affine, params=params)


def to_int16(image: np.ndarray, scale: float = 1000.0) -> np.ndarray:
    """Store as int16 like most public releases; brain voxels stay >= 1 so the nonzero mask is the brain."""
    out = np.clip(np.rint(image * scale), 0, np.iinfo(np.int16).max).astype(np.int16)
    out[(image > 0) & (out == 0)] = 1
    return out
