"""Building blocks shared by a family of architectures: ``classic`` (EDSR, SRResNet, CARN, FSRCNN, SPAN) and
``distillation`` (IMDN, RFDN, RLFN)."""
