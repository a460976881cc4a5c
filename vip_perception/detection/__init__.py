"""ViP Faster R-CNN detectors on conveyor scenes: mAP evaluation, latency wrappers, detections.
ROS-free; training and the bank build are in ``bank/`` (``train_detector``, ``build_detector``)."""
