"""The web review app: people accept, correct or discard labels in the project file."""
