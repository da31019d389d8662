"""evaluate's report scores: what its macro average averages (no model needed)."""

import numpy as np

from relunet.inference.report import NONE, confusion_matrix, per_class_scores


def test_the_macro_average_covers_the_classes_a_folder_holds_not_all_ten():
    truth = np.array([3, 3, 5, 5])
    scores = per_class_scores(confusion_matrix(truth, truth))
    assert scores["macro_avg"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert scores["classes"]["7"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_a_class_answered_but_never_written_counts_in_the_macro_average():
    truth, answered = np.array([3, 3, 5, 5]), np.array([3, 7, 5, NONE])
    macro = per_class_scores(confusion_matrix(truth, answered))["macro_avg"]
    # 3: precision 1, recall 1/2; 5: 1, 1/2; 7 (answered once, never written): 0, 0
    assert macro["precision"] == round(2 / 3, 4) and macro["recall"] == round(1 / 3, 4)
