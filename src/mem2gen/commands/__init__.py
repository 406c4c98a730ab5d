"""One module per command group: its click command(s), the work it calls and its printing
(``COMMANDS`` lists what :mod:`mem2gen.cli` registers)."""
