"""ViP Faster R-CNN detector evaluation (``evaluate detector``). ROS-free. The task itself
(building a member, post-processing to frame pixels, COCO mAP) is ``vip_perception.tasks.detection``,
the architecture ``vip_perception.models.detector``; training and the bank build are in ``bank/``
(``train_detector``, ``build_detector``)."""
