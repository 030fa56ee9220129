"""On-gateway camera analytics: motion per zone, line-crossing counts and camera-tamper checks.

Frames are analysed in memory at a reduced resolution and never leave the gateway; what leaves is
:class:`edge.adapters.base.Detected` observations carrying numbers (scores, thresholds, counts).
Nothing here recognises faces or identifies people: blobs are counted anonymously and forgotten;
an optional local model (:mod:`edge.detection.classifier`) may name a crossing blob's kind of
object (person, vehicle), never who or which one it is.
:class:`edge.detection.pipeline.FramePipeline` is the entry point; settings live in
:mod:`protocol.detection`.
"""
