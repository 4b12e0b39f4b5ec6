"""The compat runner's own safety check (compat/run_gevent_tests.py): on
Pythons whose tarfile lacks the 'data' filter (before 3.11.4, as Debian 12's
python3), sdists are unpacked only when every member passes safe_member()."""
import os
import sys
import tarfile

import pytest

COMPAT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'compat')
if not os.path.isfile(os.path.join(COMPAT, 'run_gevent_tests.py')):
    pytest.skip('compat/ is not next to the tests', allow_module_level=True)
sys.path.insert(0, COMPAT)
try:
    import run_gevent_tests
finally:
    sys.path.remove(COMPAT)


def member(name, type=tarfile.REGTYPE, linkname=''):
    m = tarfile.TarInfo(name)
    m.type = type
    m.linkname = linkname
    return m



@pytest.mark.parametrize('m, safe', [
    (member('pkg-1.0/setup.py'), True),
    (member('pkg-1.0/src', tarfile.DIRTYPE), True),
    (member('/etc/passwd'), False),
    (member('pkg-1.0/../../x'), False),
    (member('..'), False),
    (member('pkg-1.0/l', tarfile.SYMTYPE, 'setup.py'), True),
    (member('pkg-1.0/l', tarfile.SYMTYPE, '../../x'), False),
    (member('pkg-1.0/l', tarfile.SYMTYPE, '/etc/passwd'), False),
    (member('x/../../a', tarfile.SYMTYPE, 'x/../../a'), False),
    (member('pkg-1.0/h', tarfile.LNKTYPE, 'pkg-1.0/setup.py'), True),
    (member('pkg-1.0/h', tarfile.LNKTYPE, '../x'), False),
    (member('pkg-1.0/dev', tarfile.CHRTYPE), False),
    (member('pkg-1.0/fifo', tarfile.FIFOTYPE), False),
])
def test_safe_member(m, safe):
    assert run_gevent_tests.safe_member(m) is safe
