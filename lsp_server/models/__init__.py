"""What a model file is: the GGUF reader and the models shipped as Python packages."""
