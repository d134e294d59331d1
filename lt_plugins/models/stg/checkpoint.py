"""Checkpoint loading across STG's stages."""


def drop_expected_missing(module, incompatible_keys) -> None:
    """Load post-hook: keys a stage legitimately does not find in its predecessor's checkpoint
    (stage tag, re-initialised classifier, a generator trained later) are not reported missing.
    The module lists them in ``_expected_missing`` before loading."""
    expected = getattr(module, '_expected_missing', ())
    if expected:
        incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys
                                             if k not in expected]
        module._expected_missing = set()
