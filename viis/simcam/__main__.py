import sys

from viis.simcam import main

sys.exit(main())
