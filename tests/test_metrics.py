import numpy as np

from visiontl.metrics.classification import classification_metrics


def test_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    n, c = 200, 4
    targets = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), targets] += 1.0  # make it better than chance
    m = classification_metrics(targets, scores, ["a", "b", "c", "d"], topk=2)
    preds = scores.argmax(1)
    assert m["accuracy"] == np.mean(preds == targets)
    top2 = [t in np.argsort(-s)[:2] for s, t in zip(scores, targets, strict=True)]
    assert m["top2_accuracy"] == np.mean(top2)
    for k, name in enumerate("abcd"):
        tp = np.sum((preds == k) & (targets == k))
        precision = tp / np.sum(preds == k)
        recall = tp / np.sum(targets == k)
        assert np.isclose(m["per_class"][name]["precision"], precision)
        assert np.isclose(m["per_class"][name]["recall"], recall)
        assert np.isclose(m["per_class"][name]["f1"], 2 * precision * recall / (precision + recall))
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == n and np.trace(cm) == np.sum(preds == targets)
    assert cm[1, 2] == np.sum((targets == 1) & (preds == 2))


def test_topk_capped_at_class_count_and_absent_class_has_zero_support():
    targets = np.array([0, 0, 1])
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 2.0, 1.0]])
    m = classification_metrics(targets, scores, ["x", "y", "z"], topk=5)
    assert "top3_accuracy" in m and m["top3_accuracy"] == 1.0
    assert m["per_class"]["z"]["support"] == 0
    assert m["accuracy"] == 2 / 3
