"""The version of fastcnn, in one place: the package, the build and the command line read it."""
__version__ = "0.1.0"
