"""The only part of isonet-ij that knows about Java.

:mod:`isonet_ij.imagej.jvm` starts a JVM with ImageJ 1.x (Debian ``libij-java``'s
``ij.jar`` or ``$ISONET_IJ_JAR``) through scyjava, without pyimagej and without
downloading anything. Importing this package does not start Java.
"""

from .jvm import DEBIAN_IJ_JARS, JVMError, find_ij_jar, find_java, jvm_started, start_jvm

__all__ = ["DEBIAN_IJ_JARS", "JVMError", "find_ij_jar", "find_java", "jvm_started", "start_jvm"]
