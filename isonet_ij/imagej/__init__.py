"""The only part of isonet-ij that knows about Java: the Fiji/ImageJ bridge.

- :mod:`~isonet_ij.imagej.jvm`: start ImageJ 1.x (``ij.jar``: ``$ISONET_IJ_JAR`` or Debian's
  ``libij-java``) through scyjava, or a Fiji installation through pyimagej, or attach to
  the JVM already running (Fiji's Python mode); nothing is ever downloaded.
- :mod:`~isonet_ij.imagej.display`: a private Xvfb when there is no display.
- :mod:`~isonet_ij.imagej.convert`: ImagePlus <-> numpy with calibration.
- :mod:`~isonet_ij.imagej.commands`: Train / Restore / Segment on an ImagePlus (engine calls).
- :mod:`~isonet_ij.imagej.options`: the commands' options (dialog, macro string, Recorder).
- :mod:`~isonet_ij.imagej.bridge`: the commands "IsoNet Train", "IsoNet Restore",
  "IsoNet Segment" registered in ImageJ (menus, macros, Recorder).
- :mod:`~isonet_ij.imagej.app`: ImageJ's GUI with the commands, or a macro run in batch.

Importing this package does not start Java.
"""

from .jvm import (
    DEBIAN_IJ_JARS,
    JVMError,
    find_fiji,
    find_ij_jar,
    find_java,
    jvm_headless,
    jvm_started,
    start_imagej,
    start_jvm,
)

__all__ = [
    "DEBIAN_IJ_JARS",
    "JVMError",
    "find_fiji",
    "find_ij_jar",
    "find_java",
    "jvm_headless",
    "jvm_started",
    "start_imagej",
    "start_jvm",
]
