"""The bootstrap loop: label, train a fresh student, evaluate, stop or grow."""
