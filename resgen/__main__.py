from resgen.cli import main

main()
