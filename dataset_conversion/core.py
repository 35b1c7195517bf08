"""Shared machinery of every converter: case description, validation, writing, dataset.json, splits.

A source module only *discovers* cases (:class:`CaseSpec`: which file is which modality, which file is
the label, which patient a scan belongs to). Everything else happens here, identically for every source:

1. cheap checks in the main process, before anything is written: unique case ids, at least one usable
   modality, files inside the input root, headers readable, shape / spacing / orientation / origin equal
   across a case's images and its label;
2. per case (streamed through ``num_workers`` processes): voxels readable, finite, label values allowed;
   the case is written into a temporary sibling of the dataset folder, which is renamed only when every
   case has passed (:func:`brainmvp_nnunet.atomic.atomic_directory`).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainmvp_nnunet.atomic import atomic_directory
from brainmvp_nnunet.data.modalities import DISPLAY_NAMES, SLOTS, slot_of
from brainmvp_nnunet.data.nifti import write_nifti
from brainmvp_nnunet.errors import ConversionError, UnknownModalityError

FILE_ENDING = ".nii.gz"
REPORT_NAME = "conversion_report.json"
SPLITS_NAME = "splits_final.json"
FORMAT_VERSION = 1
NUM_FOLDS = 5
SPLIT_SEED = 12345  # nnU-Net's own seed for its random 5-fold split

# Geometry tolerances: headers written by different tools differ in float rounding only.
SPACING_RTOL = 1e-4
DIRECTION_ATOL = 1e-3
ORIGIN_ATOL_MM = 1e-2


@dataclass(frozen=True)
class CaseSpec:
    """One scan session of a source: where its modalities and label are, and who it belongs to.

    ``grid`` names the slot whose voxel grid is the case's grid when the release stores modalities on
    different grids (ISLES22 FLAIR, raw IXI): the other modalities are then resampled onto it through
    their world coordinates. With ``grid=None`` every image must already share one grid.
    """

    case_id: str
    images: dict[str, Path]  # canonical slot -> file
    label: Path | None = None
    patient: str | None = None  # defaults to the case id
    class_label: str | None = None
    grid: str | None = None
    problem: ConversionError | None = None  # found during discovery (e.g. an unknown modality name)


@dataclass(frozen=True)
class LabelScheme:
    """Output labels of a source and how source label values map onto them."""

    labels: dict[str, int | list[int]]  # dataset.json "labels" (region lists for BraTS)
    remap: dict[int, int] | None  # source value -> output value; None: any non-negative integer is kept
    regions_class_order: list[int] | None = None


BRATS_REGIONS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
# Both BraTS conventions end in the 2021 region convention ED 1, NCR 2, ET 3 (nnU-Net's Dataset137).
BRATS2021_LABELS = LabelScheme(BRATS_REGIONS, remap={0: 0, 1: 2, 2: 1, 4: 3}, regions_class_order=[1, 2, 3])
BRATS2023_LABELS = LabelScheme(BRATS_REGIONS, remap={0: 0, 1: 2, 2: 1, 3: 3}, regions_class_order=[1, 2, 3])
BRAIN_MASK_LABELS = LabelScheme({"background": 0, "brain": 1}, remap=None)


@dataclass(frozen=True)
class Source:
    """A converter: a name, the release naming it follows, how to find cases, and its labels.

    ``labels=None`` marks a pre-training source: its label is the brain mask. A labelled source
    whose release holds no label file at all (e.g. a BraTS validation set) is converted the same way.
    """

    name: str
    default_name: str  # DatasetXXX_<default_name>
    description: str
    discover: Callable[[Path], list[CaseSpec]]
    labels: LabelScheme | None


@dataclass
class CaseResult:
    """What a worker reports back for one case (small: no voxel data)."""

    case_id: str
    available: list[str] = field(default_factory=list)
    label_values: list[int] = field(default_factory=list)
    error: ConversionError | None = None


@dataclass(frozen=True)
class _Job:
    spec: CaseSpec
    channels: tuple[str, ...]
    labels: LabelScheme | None  # None: write the brain mask
    images_dir: Path
    labels_dir: Path


# --------------------------------------------------------------------------------------------------
# Discovery helpers shared by the source modules


def strip_nifti(name: str) -> str:
    """File name without ``.nii.gz`` / ``.nii``."""
    return re.sub(r"\.nii(\.gz)?$", "", name)


def ordered(images: dict[str, Path]) -> dict[str, Path]:
    """Images keyed by slot, in canonical slot order (the first one gives the grid of strict cases)."""
    return {slot: images[slot] for slot in SLOTS if slot in images}


def modality_token(file_name: str) -> str:
    """Modality token of a file name: the last part of the name split on ``-``, ``_`` or ``|`` (BrainMVP's rule)."""
    return re.split(r"[-_|]", strip_nifti(file_name))[-1]


def slot_from_name(file_name: str) -> str:
    """Canonical slot of a file named after its modality (``t1.nii.gz``, ``case1_T1GD.nii.gz``, ``t2-flair.nii``).

    The whole name is tried first (``t2_flair``), then its last token. Raises :class:`UnknownModalityError`.
    """
    stem = strip_nifti(file_name)
    try:
        return slot_of(stem)
    except UnknownModalityError:
        return slot_of(modality_token(file_name))


def match_files(root: Path, pattern: re.Pattern[str]) -> Iterator[tuple[re.Match[str], Path]]:
    """Every file under ``root`` (hidden folders excluded) whose name matches ``pattern``, sorted by path."""
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            yield match, path


def group_cases(root: Path, pattern: re.Pattern[str], slots: dict[str, str], label_token: str | None = None,
                patient: Callable[[str], str] | None = None, grid: str | None = None,
                by_folder: bool = True) -> list[CaseSpec]:
    """Cases from file names with named groups ``case`` and ``token`` (modality or label token).

    With ``by_folder`` the files of a case sit in one folder, and the same case id in two folders gives
    two cases, which the duplicate-id check then reports. Without it (one folder per modality, as IXI)
    files are grouped by case id alone.
    """
    groups: dict[tuple[str, Path | None], dict[str, Path]] = {}
    for match, path in match_files(root, pattern):
        files = groups.setdefault((match["case"], path.parent if by_folder else None), {})
        if match["token"] in files:
            raise ConversionError(f"two {match['token']} files for one case (also {files[match['token']]})",
                                  case=match["case"], file=str(path))
        files[match["token"]] = path
    specs = []
    for (case, _folder), files in sorted(groups.items()):
        label = files.pop(label_token, None) if label_token else None
        specs.append(CaseSpec(case, ordered({slots[t]: p for t, p in files.items()}), label,
                              patient=patient(case) if patient else None, grid=grid))
    return specs


def attach_labels(specs: list[CaseSpec], labels: dict[str, Path]) -> list[CaseSpec]:
    """Cases with their label file looked up by case id (releases that keep labels in another folder)."""
    return [replace(spec, label=labels.get(spec.case_id)) for spec in specs]


def require_cases(found: list[CaseSpec], root: Path, what: str) -> list[CaseSpec]:
    """Return ``found``, or raise when a source found no case at all in ``root``."""
    if not found:
        raise ConversionError(f"no case found in {root}; expected {what}")
    return found


# --------------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image: shape, spacing (mm), direction cosines and origin (world mm)."""

    shape: tuple[int, ...]
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along each axis."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(0))

    @property
    def direction(self) -> np.ndarray:
        """Unit axis directions (columns)."""
        return self.affine[:3, :3] / self.spacing

    def mismatch(self, other: Geometry) -> str | None:
        """First difference from ``other`` as a readable phrase, or None when the grids agree."""
        if self.shape != other.shape:
            return f"shape {self.shape} differs from {other.shape}"
        if not np.allclose(self.spacing, other.spacing, rtol=SPACING_RTOL, atol=1e-6):
            return f"spacing {_fmt(self.spacing)} differs from {_fmt(other.spacing)}"
        if not np.allclose(self.direction, other.direction, atol=DIRECTION_ATOL):
            return (f"orientation {''.join(nib.aff2axcodes(self.affine))} differs from "
                    f"{''.join(nib.aff2axcodes(other.affine))}")
        if not np.allclose(self.affine[:3, 3], other.affine[:3, 3], atol=ORIGIN_ATOL_MM):
            return f"origin {_fmt(self.affine[:3, 3])} differs from {_fmt(other.affine[:3, 3])}"
        return None


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _load(path: Path, case: str) -> nib.Nifti1Image:
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for bad files; all mean "unreadable"
        raise ConversionError(f"cannot read the NIfTI header ({exc})", case=case, file=str(path)) from exc
    return img


def _geometry(img: nib.Nifti1Image, path: Path, case: str) -> Geometry:
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise ConversionError(f"expected a 3-D image, found shape {shape}", case=case, file=str(path))
    return Geometry(shape, np.asarray(img.affine, dtype=np.float64))


def read_geometry(path: Path, case: str) -> Geometry:
    """Grid of a NIfTI file from its header only; 3-D images (trailing singleton axes allowed)."""
    return _geometry(_load(path, case), path, case)


def read_image(path: Path, case: str) -> tuple[Geometry, np.ndarray]:
    """Grid and voxels of a 3-D NIfTI file; corrupt or truncated files raise :class:`ConversionError`."""
    img = _load(path, case)
    geometry = _geometry(img, path, case)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip (EOFError), bad zlib stream, short file (OSError) ...
        raise ConversionError(f"cannot read the voxel data, the file is corrupt or truncated ({exc})",
                              case=case, file=str(path)) from exc
    return geometry, data.reshape(geometry.shape)


def resample_to(data: np.ndarray, source_affine: np.ndarray, target: Geometry) -> np.ndarray:
    """Trilinear resampling of ``data`` onto ``target``'s grid through world coordinates (zeros outside)."""
    index_map = np.linalg.inv(source_affine) @ target.affine  # target voxel -> source voxel
    return ndimage.affine_transform(data.astype(np.float32), index_map[:3, :3], offset=index_map[:3, 3],
                                    output_shape=target.shape, order=1, mode="constant", cval=0.0)


# --------------------------------------------------------------------------------------------------
# Checks in the main process (headers and structure only)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def check_case_headers(spec: CaseSpec, root: Path) -> None:
    """Structural and geometric checks of one case from its file headers (no voxel data read)."""
    if spec.problem is not None:
        raise spec.problem
    if not spec.images:
        raise ConversionError("no usable modality (no image file of a known modality)", case=spec.case_id)
    files = [*spec.images.values(), *([spec.label] if spec.label is not None else [])]
    for path in files:
        if not _inside(path, root):
            raise ConversionError(f"path escapes the input root {root}", case=spec.case_id, file=str(path))
        if not path.is_file():
            raise ConversionError("file does not exist", case=spec.case_id, file=str(path))
    geometries = {slot: read_geometry(path, spec.case_id) for slot, path in spec.images.items()}
    if spec.grid is not None and spec.grid not in geometries:
        raise ConversionError(f"the reference modality {spec.grid} of this source is missing", case=spec.case_id)
    reference_slot = spec.grid or next(iter(geometries))
    reference = geometries[reference_slot]
    if spec.grid is None:  # strict: every modality on one grid
        for slot, geometry in geometries.items():
            problem = geometry.mismatch(reference)
            if problem:
                raise ConversionError(f"{slot} image {problem} of the {reference_slot} image",
                                      case=spec.case_id, file=str(spec.images[slot]))
    if spec.label is not None:
        problem = read_geometry(spec.label, spec.case_id).mismatch(reference)
        if problem:
            raise ConversionError(f"label {problem} of the {reference_slot} image", case=spec.case_id,
                                  file=str(spec.label))


def _first_file(spec: CaseSpec) -> Path | None:
    return next(iter(spec.images.values()), spec.label)


def check_unique_ids(specs: list[CaseSpec]) -> list[ConversionError]:
    """One error per case whose id is used more than once (ids name the output files)."""
    counts = Counter(spec.case_id for spec in specs)
    errors = []
    for spec in specs:
        if counts[spec.case_id] > 1:
            others = [str(_first_file(o)) for o in specs if o.case_id == spec.case_id and o is not spec]
            errors.append(ConversionError(f"duplicate case id: {counts[spec.case_id]} cases are named "
                                          f"{spec.case_id} (also {', '.join(others)})", case=spec.case_id,
                                          file=str(_first_file(spec))))
    return errors


# --------------------------------------------------------------------------------------------------
# Per-case conversion (runs in worker processes)


def _label_array(job: _Job, data: np.ndarray, path: Path) -> np.ndarray:
    case = job.spec.case_id
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise ConversionError("label contains NaN or Inf values", case=case, file=str(path))
        if not np.array_equal(data, np.round(data)):
            raise ConversionError("label contains non-integer values", case=case, file=str(path))
    values = np.unique(data).astype(np.int64)
    remap = job.labels.remap
    if remap is None:
        bad = values[(values < 0) | (values > 255)]
    else:
        bad = np.setdiff1d(values, np.array(sorted(remap), dtype=np.int64))
    if bad.size:
        allowed = "non-negative integers up to 255" if remap is None else str(sorted(remap))
        raise ConversionError(f"label values {bad.tolist()} outside the allowed set {allowed}", case=case,
                              file=str(path))
    out = data.astype(np.uint8)
    if remap is not None:
        lut = np.zeros(max(remap) + 1, dtype=np.uint8)
        for src, dst in remap.items():
            lut[src] = dst
        out = lut[data.astype(np.int64)]
    return out


def convert_case(job: _Job) -> CaseResult:
    """Read, check and write one case; errors come back in the result (they must cross processes)."""
    spec = job.spec
    result = CaseResult(spec.case_id)
    try:
        reference = read_geometry(spec.images[spec.grid or next(iter(spec.images))], spec.case_id)
        images: dict[str, np.ndarray] = {}
        for slot, path in spec.images.items():
            geometry, data = read_image(path, spec.case_id)
            if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
                raise ConversionError(f"{slot} image contains NaN or Inf voxels", case=spec.case_id, file=str(path))
            if geometry.mismatch(reference):  # only sources with a reference grid get here: resample
                data = resample_to(data, geometry.affine, reference)
            # scaled integer files (scl_slope) come back as float64; float32 halves the file size
            images[slot] = data.astype(np.float32) if data.dtype == np.float64 else data
        if job.labels is None:
            label = np.zeros(reference.shape, dtype=np.uint8)
            for data in images.values():
                label[data != 0] = 1
        else:
            label = _label_array(job, read_image(spec.label, spec.case_id)[1], spec.label)
        for index, slot in enumerate(job.channels):
            data = images.get(slot)
            if data is None:  # missing modality: zeros with the case's geometry
                data = np.zeros(reference.shape, dtype=np.uint8)
            write_nifti(job.images_dir / f"{spec.case_id}_{index:04d}{FILE_ENDING}", data, reference.affine)
        write_nifti(job.labels_dir / f"{spec.case_id}{FILE_ENDING}", label, reference.affine)
        result.available = [s for s in job.channels if s in images]
        result.label_values = np.unique(label).astype(int).tolist()
    except ConversionError as exc:
        result.error = exc
    return result


def _remove_case_files(job: _Job) -> None:
    for index in range(len(job.channels)):
        (job.images_dir / f"{job.spec.case_id}_{index:04d}{FILE_ENDING}").unlink(missing_ok=True)
    (job.labels_dir / f"{job.spec.case_id}{FILE_ENDING}").unlink(missing_ok=True)


def _run_jobs(jobs: list[_Job], num_workers: int) -> Iterator[CaseResult]:
    """Stream the jobs through a process pool (or in-process for one worker), in order."""
    if num_workers <= 1:
        yield from map(convert_case, jobs)
        return
    # spawn: workers must not inherit a parent that may hold threads (torch, BLAS).
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
        yield from pool.imap(convert_case, jobs, chunksize=1)


def _progress(results: Iterable[CaseResult], total: int) -> Iterator[CaseResult]:
    from tqdm import tqdm

    with tqdm(total=total, desc="convert", unit="case", file=sys.stderr, dynamic_ncols=True) as bar:
        for result in results:
            bar.set_postfix_str(result.case_id, refresh=False)
            bar.update()
            yield result


# --------------------------------------------------------------------------------------------------
# Dataset-level outputs


def patient_splits(case_patients: dict[str, str], num_folds: int = NUM_FOLDS,
                   seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` folds in which all scans of a patient fall into the same fold."""
    patients = sorted(set(case_patients.values()))
    random.Random(seed).shuffle(patients)
    folds = min(num_folds, len(patients))
    fold_of = {patient: i % folds for i, patient in enumerate(patients)}
    cases = sorted(case_patients)
    return [{"train": [c for c in cases if fold_of[case_patients[c]] != k],
             "val": [c for c in cases if fold_of[case_patients[c]] == k]} for k in range(folds)]


def dataset_json(source: Source, name: str, channels: tuple[str, ...], labels: LabelScheme,
                 results: list[CaseResult], specs: dict[str, CaseSpec], pretraining: bool) -> dict:
    """The dataset.json of a converted dataset, with the ``brainmvp`` block."""
    label_names = dict(labels.labels)
    if labels.remap is None and not pretraining:  # generic labels: name every value present
        present = sorted({v for r in results for v in r.label_values} | {0})
        label_names = {"background": 0, **{f"label_{v}": v for v in present if v}}
    out = {
        "name": name,
        "description": f"converted from {source.description} by brainmvp convert",
        "channel_names": {str(i): DISPLAY_NAMES[slot] for i, slot in enumerate(channels)},
        "labels": label_names,
        "numTraining": len(results),
        "file_ending": FILE_ENDING,
    }
    if labels.regions_class_order is not None:
        out["regions_class_order"] = list(labels.regions_class_order)
    block = {
        "format_version": FORMAT_VERSION,
        "source": source.name,
        "channel_slots": {str(i): slot for i, slot in enumerate(channels)},
        "available_slots": {r.case_id: r.available for r in results},
        "pretraining": pretraining,
    }
    class_labels = {r.case_id: specs[r.case_id].class_label for r in results
                    if specs[r.case_id].class_label is not None}
    if class_labels:
        block["class_labels"] = class_labels
    out["brainmvp"] = block
    return out


def check_generic_labels(results: list[CaseResult]) -> None:
    """nnU-Net needs consecutive label values 0..K over the whole dataset."""
    present = sorted({v for r in results for v in r.label_values} | {0})
    if present != list(range(len(present))):
        raise ConversionError(f"label values {present} over the dataset are not consecutive integers from 0; "
                              "nnU-Net requires 0, 1, ..., K")


def dataset_folder(root: Path, dataset_id: int, name: str) -> Path:
    """``root/DatasetXXX_name``; refuses ids out of range, bad names and ids that already exist."""
    if not 1 <= dataset_id <= 999:
        raise ConversionError(f"dataset id {dataset_id} must be between 1 and 999")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise ConversionError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    prefix = f"Dataset{dataset_id:03d}_"
    if root.is_dir():
        taken = sorted(p.name for p in root.iterdir() if p.name.startswith(prefix))
        if taken:
            raise ConversionError(f"dataset id {dataset_id} already exists: {root / taken[0]}; choose another --id")
    return root / f"{prefix}{name}"


# --------------------------------------------------------------------------------------------------
# The whole conversion


def run_conversion(source: Source, input_dir: Path, output: Path, num_workers: int = 1,
                   skip_bad_cases: bool = False) -> Path:
    """Convert every case ``source`` finds in ``input_dir`` into the new nnU-Net raw folder ``output``."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise ConversionError(f"input folder {input_dir} does not exist or is not a folder")
    specs = source.discover(input_dir)
    bad = check_unique_ids(specs)
    duplicated = {e.case for e in bad}
    good: list[CaseSpec] = []
    for spec in specs:
        if spec.case_id in duplicated:
            continue
        try:
            check_case_headers(spec, input_dir)
        except ConversionError as exc:
            bad.append(exc)
            continue
        good.append(spec)
    if bad and not skip_bad_cases:
        raise bad[0]
    if not good:
        raise ConversionError(f"no convertible case left in {input_dir} ({len(bad)} bad)")
    has_labels = [s.label is not None for s in good]
    pretraining = source.labels is None or not any(has_labels)
    if not pretraining and not all(has_labels):
        unlabelled = [s for s in good if s.label is None]
        missing = [ConversionError("label file missing (other cases of this release have one)", case=s.case_id)
                   for s in unlabelled]
        if not skip_bad_cases:
            raise missing[0]
        bad += missing
        good = [s for s in good if s.label is not None]
    labels = BRAIN_MASK_LABELS if pretraining else source.labels
    channels = tuple(slot for slot in SLOTS if any(slot in s.images for s in good))
    by_id = {s.case_id: s for s in good}

    with atomic_directory(output) as tmp:
        images_dir, labels_dir = tmp / "imagesTr", tmp / "labelsTr"
        images_dir.mkdir()
        labels_dir.mkdir()
        jobs = [_Job(s, channels, None if pretraining else labels, images_dir, labels_dir) for s in good]
        results: list[CaseResult] = []
        for job, result in zip(jobs, _progress(_run_jobs(jobs, num_workers), len(jobs)), strict=True):
            if result.error is None:
                results.append(result)
                continue
            if not skip_bad_cases:
                raise result.error
            _remove_case_files(job)
            bad.append(result.error)
        if not results:
            raise ConversionError(f"no convertible case left in {input_dir} ({len(bad)} bad)")
        if labels.remap is None and not pretraining:
            check_generic_labels(results)
        content = dataset_json(source, output.name.split("_", 1)[1], channels, labels, results, by_id, pretraining)
        (tmp / "dataset.json").write_text(json.dumps(content, indent=2) + "\n")
        case_patients = {r.case_id: by_id[r.case_id].patient or r.case_id for r in results}
        if len(set(case_patients.values())) < len(case_patients) and len(set(case_patients.values())) > 1:
            (tmp / SPLITS_NAME).write_text(json.dumps(patient_splits(case_patients), indent=2) + "\n")
        if skip_bad_cases:
            report = {"source": source.name, "input": str(input_dir), "converted": len(results),
                      "skipped": [{"case": e.case, "file": e.file, "reason": e.reason} for e in bad]}
            (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    if bad:
        print(f"skipped {len(bad)} bad case(s); see {output / REPORT_NAME}", file=sys.stderr)
    return output
