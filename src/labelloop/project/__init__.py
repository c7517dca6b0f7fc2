"""Commands over a project as a whole: the starter config, status counts, the labels export."""
