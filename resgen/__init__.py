"""resgen: a ResNet architecture-spec compiler.

Pipeline, one module per stage: load -> spec -> lower -> passes -> backends -> render; cli drives it.
"""

__version__ = "0.1.0"
