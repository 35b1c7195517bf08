"""Data model: modality registry, brain anatomy, synthetic multi-parametric MRI."""
