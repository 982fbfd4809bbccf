"""Sub-commands of the `bptt` command line (see bptt.cli)."""
