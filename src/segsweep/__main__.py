from segsweep.cli import main

main()
