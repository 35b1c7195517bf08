"""Converters from public releases and plain folders to nnU-Net raw format (``brainmvp_nnunet.dataset_conversion``)."""
