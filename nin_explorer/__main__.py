from .cli import main
from nin_explorer.base.procs import exit_process

exit_process(main())
