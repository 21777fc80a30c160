"""Built-in SR architectures. Importing this package registers them with ``quantsr.registry``.

Every model maps RGB in [0, 1] (N, 3, H, W) to RGB in [0, 1] (N, 3, sH, sW), keeps constants (mean shifts,
input range) as buffers, has ``example_inputs()`` and a ``convert_checkpoint(state_dict, scale)`` classmethod
that maps the public checkpoint's keys onto the module (BasicSR-style top-level names: ``conv_first``, ``body``,
``conv_after_body``, ``upsample``, ``conv_last``).
"""
from quantsr.models import carn, edsr, fsrcnn, imdn, rfdn, rlfn, span, srresnet, swinir  # noqa: F401
