"""Datasets: Fashion-MNIST (IDX files) and user image folders as in-memory uint8 arrays, and a
team's own ImageFolder or COCO data streamed from disk (``user_data``)."""
from .fashion_mnist import CLASS_NAMES, ArrayDataset, default_root, load_fashion_mnist, read_idx, train_val_split
from .image_folder import load_image_folder, to_model_array
from .user_data import DatasetError, DatasetInfo, coco_ground_truth, detect_dataset, open_split

__all__ = ["CLASS_NAMES", "ArrayDataset", "DatasetError", "DatasetInfo", "coco_ground_truth", "default_root",
           "detect_dataset", "load_fashion_mnist", "load_image_folder", "open_split", "read_idx", "to_model_array",
           "train_val_split"]
