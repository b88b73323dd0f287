from .cli import main
from .procs import exit_process

exit_process(main())
