from robustmer.cli import main

main()
