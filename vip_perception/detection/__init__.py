"""ViP Faster R-CNN detectors on conveyor scenes: training and the detector bank build. ROS-free.
The task itself (building a member, post-processing to frame pixels, COCO mAP) is
``vip_perception.tasks.detection``; the architecture is ``vip_perception.models.detector``."""
