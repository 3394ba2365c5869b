"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), for machines that reach
PyPI but not ci-files.testing.ansible.com, where ansible-test downloads the real one.

ansible-test creates each sanity test's virtual environment without pip and runs
``python get_pip.py --disable-pip-version-check pip==V setuptools==V wheel==V`` in it; the
real script unpacks a bundled pip and installs those packages. This one does the same
with the interpreter's own ``ensurepip`` and then pip from the package index; get-pip's own
options ``--no-setuptools`` and ``--no-wheel`` (newer ansible-test passes them) only say
which packages not to add, so they are not passed on to pip.
ansible/run-ansible-test puts it in ansible-test's cache under a private HOME
(build/ansible-test-home), never in the user's own ~/.ansible.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")
arguments = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *arguments])
