import os
import sys

from .cli import main
from .distributed import launched

code = main()
if launched():
    # Under torchrun, skip C++ static destructors at exit: gloo's can abort a rank that has
    # already finished cleanly ("terminate called without an active exception").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
