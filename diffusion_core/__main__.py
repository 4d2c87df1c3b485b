import sys

from diffusion_core.cli import main

sys.exit(main())
