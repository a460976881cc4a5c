"""ViP Faster R-CNN detectors on conveyor scenes: training, mAP evaluation, latency, bank build.
ROS-free; the CLI commands are ``bank build-detector`` (build.py) and ``evaluate detector``
(evaluate.py)."""
