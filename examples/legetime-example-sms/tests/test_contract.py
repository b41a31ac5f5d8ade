"""The SMS contract every Legetime SMS provider keeps, from Legetime's contract kit, run against ours.

The kit's fixtures ``legetime_spec`` and ``legetime_driver`` are defined in ``conftest.py``.
"""

from legetime.testing import SmsContract


class TestExampleGatewaySms(SmsContract):
    pass
