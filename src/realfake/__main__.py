from realfake.cli import main

raise SystemExit(main())
