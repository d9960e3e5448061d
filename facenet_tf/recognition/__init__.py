"""Recognition with the embedding (paper: "recognition is k-NN"): a gallery of enrolled faces, identification
against it (closed and open set), exact and approximate nearest-neighbour search, faces found in ordinary photos,
and contact sheets.

    from facenet_tf.recognition import Gallery
    gallery = Gallery()
    gallery.add("Alice", alice_embeddings)          # any number of embeddings per person
    gallery.identify(probe_embeddings, threshold=0.92)  # [(name or None, distance), ...]

``search`` (numpy; faiss only for ``kind="hnsw"``) and ``gallery`` import no TensorFlow; ``photos`` uses the MTCNN
detector (TensorFlow) on first use.
"""

from facenet_tf.recognition.contact_sheet import contact_sheet, write_contact_sheet
from facenet_tf.recognition.gallery import Gallery, Matches
from facenet_tf.recognition.photos import (FACE_CHOICES, FaceRecord, PhotoFaces, PhotoList, find_faces, list_photos,
                                           load_faces, save_faces, scan_photos)
from facenet_tf.recognition.search import (ANN_HELP, INDEX_KINDS, ExactIndex, HnswIndex, create_index,
                                           faiss_available, pairwise_squared_l2, top_k_smallest)

__all__ = [
    "ANN_HELP", "FACE_CHOICES", "INDEX_KINDS", "ExactIndex", "FaceRecord", "Gallery", "HnswIndex", "Matches",
    "PhotoFaces", "PhotoList", "scan_photos", "contact_sheet", "create_index", "faiss_available", "find_faces", "list_photos", "load_faces",
    "pairwise_squared_l2", "save_faces", "top_k_smallest", "write_contact_sheet",
]
