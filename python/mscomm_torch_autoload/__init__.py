"""What torch runs at ``import torch`` (entry point group ``torch.backends``): registers the
torch.distributed backend "mscomm". Kept outside the mscomm package and never raising, so that
an mscomm that cannot be imported turns into a warning, not a failed ``import torch``."""


def autoload() -> None:
    try:
        import mscomm.torch  # noqa: F401  (registers the backend on import)
    except Exception as exc:  # noqa: BLE001 - must not break torch's import, whatever went wrong
        import warnings

        warnings.warn(f"mscomm: torch.distributed backend 'mscomm' not registered ({exc})", RuntimeWarning,
                      stacklevel=2)
