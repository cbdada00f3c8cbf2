from nextclose.cli import main

raise SystemExit(main())
