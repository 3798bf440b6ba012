"""The brats command-line tool."""
