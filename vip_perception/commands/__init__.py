"""One module per ``vip-perception`` subcommand: ``GROUP_NAME.py`` for ``vip-perception GROUP NAME``.

A command module holds argument parsing, printing and file output, and calls the library
(``bank/``, ``evaluation/``, ``bench/``, ``ros/tools/``) for the work. Nothing in the library
imports from here.
"""
