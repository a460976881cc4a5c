"""Datasets as in-memory uint8 arrays: Fashion-MNIST (IDX files) and user image folders."""
from .fashion_mnist import CLASS_NAMES, ArrayDataset, default_root, load_fashion_mnist, read_idx, train_val_split
from .image_folder import load_image_folder, to_model_array

__all__ = ["CLASS_NAMES", "ArrayDataset", "default_root", "load_fashion_mnist", "load_image_folder", "read_idx",
           "to_model_array", "train_val_split"]
