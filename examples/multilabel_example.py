"""A multi-label model whose predictions the --multilabel commands read.

The data are synthetic: scikit-learn ships no multi-label data set that loads offline, so
make_multilabel_classification draws documents of word counts on 10 topics (a document has
about 3 topics). A one-vs-rest logistic regression, trained with little regularisation on
1,000 documents, gives each topic's logit; val.npz and test.npz hold its logits (n, 10), the
(n, 10) 0/1 indicator matrix of the topics and their names. Run, then:

    python examples/multilabel_example.py out/multilabel
    calibrate evaluate out/multilabel/test.npz --multilabel
    calibrate fit out/multilabel/val.npz --multilabel --method platt -o out/multilabel/platt.json
    calibrate report out/multilabel/test.npz --multilabel --fit-on out/multilabel/val.npz -o out/multilabel/report.html
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/multilabel")
X, Y = make_multilabel_classification(n_samples=6000, n_features=40, n_classes=10, n_labels=3,
                                      random_state=0)   # X: (6000, 40) word counts; Y: (6000, 10) 0/1
train, val, test = slice(0, 1000), slice(1000, 3500), slice(3500, 6000)
model = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=5000)).fit(X[train], Y[train])

out.mkdir(parents=True, exist_ok=True)
names = np.array([f"topic {j}" for j in range(Y.shape[1])])
for split, rows in (("val", val), ("test", test)):
    np.savez(out / f"{split}.npz", logits=model.decision_function(X[rows]), labels=Y[rows], label_names=names)
    print(f"wrote {out / f'{split}.npz'}: logits {Y[rows].shape}, labels {Y[rows].shape}")
