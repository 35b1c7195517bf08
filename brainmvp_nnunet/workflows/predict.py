"""``brainmvp predict``: nnU-Net inference when some modalities are absent.

nnU-Net needs every input channel. Missing channels are filled in nnU-Net's preprocessed space
(after cropping, resampling and normalisation, where the templates live; see
:mod:`brainmvp_nnunet.inference.fill`) with the modality templates of the checkpoint the model was
fine-tuned from, or with zeros, then the network runs through nnU-Net's own predictor. The steps are
those of ``nnUNetPredictor.predict_from_files_sequential`` (read, ``run_case_npy``, sliding window,
``export_prediction_from_logits``) with the fill between preprocessing and the network, so with all
channels present this is stock ``nnUNetv2_predict`` and the outputs keep the input's geometry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.data.modalities import slot_of
from brainmvp_nnunet.errors import PredictionError
from brainmvp_nnunet.inference import (
    CaseChannels,
    FillTemplates,
    fill_templates_from_weights,
    find_case_files,
    geometry_difference,
    parse_available,
    select_channels,
    template_on_preprocessed_case,
)
from brainmvp_nnunet.nnunet_env import activate_ext_trainers, require_nnunet_paths
from brainmvp_nnunet.planners.variants import results_folder
from brainmvp_nnunet.pretraining.availability import parse_brainmvp_block
from brainmvp_nnunet.trainers.finetune import pretrained_source
from brainmvp_nnunet.transfer import read_encoder_weights

CONFIGURATION = "3d_fullres"
CHECKPOINT = "checkpoint_final.pth"
FILL_MODES = ("templates", "zeros")
RECORD_NAME = "brainmvp_predict.json"


def model_folder(dataset: int | str, trainer: str, plans: str) -> Path:
    """``nnUNet_results/<Dataset>/<trainer>__<plans>__3d_fullres``, which must hold a trained model."""
    require_nnunet_paths()
    try:
        folder = results_folder(dataset, trainer, plans, CONFIGURATION)
    except RuntimeError as exc:
        raise PredictionError(f"dataset {dataset}: {exc}") from None
    if not (folder / "plans.json").is_file():
        raise PredictionError(f"no trained model (train it with `brainmvp finetune -d {dataset} -p {plans} "
                              f"-tr {trainer}`)", file=str(folder))
    return folder


def channel_slots_of(dataset_json: dict) -> tuple[str, ...]:
    """Modality slot of every input channel: from the ``brainmvp`` block, else from ``channel_names``."""
    if "brainmvp" in dataset_json:
        return parse_brainmvp_block(dataset_json).channel_slots
    names = dataset_json["channel_names"]
    return tuple(slot_of(names[str(i)]) for i in range(len(names)))


def _warn(message: str) -> None:
    print(f"[predict] warning: {message}", flush=True)


class MissingModalityPredictor:
    """One trained nnU-Net model (some folds) that predicts cases with missing channels filled.

    Args:
        model: the trained model folder (:func:`model_folder`).
        folds: folds to ensemble; None = every fold with a final checkpoint (as ``nnUNetv2_predict``).
        fill: ``"templates"`` or ``"zeros"``; templates fall back to zeros, with a warning, when none exist.
        templates_file: checkpoint to take the templates from; default the one the model was fine-tuned from
            (the trainer's choice: ``$BRAINMVP_PRETRAINED``, else the plans' ``brainmvp_finetune`` key).
        device: torch device name.
    """

    def __init__(self, model: Path, folds: Sequence[int | str] | None = None, fill: str = "templates",
                 templates_file: Path | None = None, device: str = "cpu"):
        if fill not in FILL_MODES:
            raise PredictionError(f"unknown fill {fill!r}; choose one of {', '.join(FILL_MODES)}")
        activate_ext_trainers()  # the trainer class is looked up by name when the model is loaded
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        folds = nnUNetPredictor.auto_detect_available_folds(str(model), CHECKPOINT) if folds is None else list(folds)
        if not folds:
            raise PredictionError(f"no fold_*/{CHECKPOINT}: the model has not finished training", file=str(model))
        for fold in folds:
            if not (model / f"fold_{fold}" / CHECKPOINT).is_file():
                raise PredictionError(f"fold {fold} has no {CHECKPOINT}", file=str(model / f"fold_{fold}"))
        self.predictor = nnUNetPredictor(device=torch.device(device), allow_tqdm=False)
        self.predictor.initialize_from_trained_model_folder(str(model), folds, CHECKPOINT)
        self.model, self.folds, self.fill = model, list(folds), fill
        self.channel_slots = channel_slots_of(self.predictor.dataset_json)
        self.file_ending: str = self.predictor.dataset_json["file_ending"]
        self._templates_file = templates_file
        self._templates: FillTemplates | None = None
        self._templates_loaded = False

    def templates(self) -> FillTemplates | None:
        """The fill templates, read once on first need (None: fill with zeros)."""
        if self.fill == "zeros" or self._templates_loaded:
            return self._templates
        self._templates_loaded = True
        path, origin = ((str(self._templates_file), "--templates") if self._templates_file is not None
                        else pretrained_source(self.predictor.plans_manager.plans))
        if path is None:
            _warn("the model records no pre-trained checkpoint, so there are no templates: missing channels are "
                  "filled with zeros (pass --templates FILE, or --fill zeros to silence this)")
            return None
        self._templates = fill_templates_from_weights(read_encoder_weights(path))
        if self._templates is None:
            _warn(f"{path} (from {origin}) has no modality templates: missing channels are filled with zeros")
            return None
        lacking = [s for s in self.channel_slots if s not in self._templates.volumes]
        if lacking:
            _warn(f"{path} has no template for {', '.join(lacking)}: those channels are filled with zeros")
        print(f"[predict] templates for missing channels from {path} (from {origin})", flush=True)
        return self._templates

    def _read(self, case: CaseChannels) -> tuple[np.ndarray, dict]:
        """The (C, Z, Y, X) image with zeros in the missing channels, and the reader's properties."""
        reader = self.predictor.plans_manager.image_reader_writer_class()
        reference: tuple[tuple[int, ...], dict, Path] | None = None
        images: dict[int, np.ndarray] = {}
        for channel, path in case.files.items():
            try:
                image, properties = reader.read_images([str(path)])
            except (RuntimeError, OSError) as exc:
                raise PredictionError(f"cannot read the image: {exc}", case=case.case, file=str(path)) from None
            if reference is None:
                reference = (image.shape[1:], properties, path)
            else:
                difference = geometry_difference(reference[0], reference[1], image.shape[1:], properties)
                if difference is not None:
                    raise PredictionError(f"geometry differs from {reference[2].name}: {difference}",
                                          case=case.case, file=str(path))
            images[channel] = image[0]
        assert reference is not None  # select_channels never returns a case without files
        data = np.zeros((len(self.channel_slots), *reference[0]), dtype=np.float32)
        for channel, image in images.items():
            data[channel] = image
        return data, reference[1]

    def _fill(self, data: np.ndarray, missing: Sequence[int], properties: dict) -> dict[str, str]:
        """Overwrite the missing channels of a preprocessed case; returns slot -> ``template``/``zeros``."""
        templates = self.templates() if missing else None
        used = {}
        for channel in missing:
            slot = self.channel_slots[channel]
            volume = templates.volumes.get(slot) if templates is not None else None
            if volume is None:
                data[channel] = 0.0  # what the zero channel of a converted case becomes, for any normalisation
                used[slot] = "zeros"
            else:
                data[channel] = template_on_preprocessed_case(volume, templates.spacing, properties, data.shape[1:],
                                                              self.predictor.plans_manager.transpose_forward)
                used[slot] = "template"
        return used

    def prepare(self, case: CaseChannels) -> tuple[np.ndarray, dict, dict[str, str]]:
        """The case as the network receives it: read, preprocessed by nnU-Net, missing channels filled.

        Returns the (C, Z, Y, X) array, nnU-Net's properties of the case (what the export needs to restore
        the input's geometry) and, per missing slot, ``template`` or ``zeros``.
        """
        data, properties = self._read(case)
        predictor = self.predictor
        preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(data, None, properties, predictor.plans_manager,
                                                        predictor.configuration_manager, predictor.dataset_json)
        return data, properties, self._fill(data, case.missing, properties)

    def predict(self, cases: Sequence[CaseChannels], output: Path) -> list[dict]:
        """Predict ``cases`` into ``output/<case><file_ending>``; returns (and writes) what was filled."""
        from nnunetv2.inference.export_prediction import export_prediction_from_logits

        predictor = self.predictor
        plans_manager, configuration = predictor.plans_manager, predictor.configuration_manager
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        # as nnU-Net does: its evaluation and post-processing read these next to the predictions
        shutil.copyfile(self.model / "dataset.json", output / "dataset.json")
        shutil.copyfile(self.model / "plans.json", output / "plans.json")
        records = []
        for case in cases:
            data, properties, filled = self.prepare(case)
            logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
            export_prediction_from_logits(logits, properties, configuration, plans_manager, predictor.dataset_json,
                                          str(output / case.case), False)
            records.append({"case": case.case, "used": [self.channel_slots[c] for c in case.files],
                            "filled": filled})
            how = ", ".join(f"{slot} ({fill})" for slot, fill in filled.items()) or "none"
            print(f"[predict] {case.case}: used {', '.join(records[-1]['used'])}; filled {how}", flush=True)
        record = {"model": str(self.model), "folds": self.folds, "fill": self.fill,
                  "templates": self._templates.source if self._templates is not None else None, "cases": records}
        atomic_write_bytes(output / RECORD_NAME, (json.dumps(record, indent=2) + "\n").encode())
        return records


def predict_folder(input_folder: Path, output_folder: Path, dataset: int | str, plans: str = "BrainMVPPlans",
                   trainer: str = "nnUNetTrainerBrainMVP", folds: Sequence[int | str] | None = None,
                   available: Sequence[str] | None = None, fill: str = "templates",
                   templates_file: Path | None = None, device: str = "cpu") -> list[dict]:
    """Predict every case of an nnU-Net-named input folder whose channel files may be incomplete.

    ``available`` restricts the modalities used (names or aliases), even where files exist. All cases
    are checked (channels, names) before the first prediction. Returns one record per case.
    """
    predictor = MissingModalityPredictor(model_folder(dataset, trainer, plans), folds, fill, templates_file, device)
    slots = predictor.channel_slots
    allowed = parse_available(available, slots)
    files = find_case_files(Path(input_folder), predictor.file_ending, len(slots))
    cases = [select_channels(case, case_files, allowed, slots) for case, case_files in files.items()]
    return predictor.predict(cases, Path(output_folder))
