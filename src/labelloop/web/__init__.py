"""Pieces both HTTP apps share (the review app and `labelloop serve`): the request guard."""
