# Your own model through calibrate.integrations.torch: logits -> temperature -> a calibrated model.
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import calibrate
from calibrate.integrations.torch import CalibratedModel, mc_dropout_logits, predict_logits

torch.manual_seed(0)
x = torch.randn(2000, 20, dtype=torch.float64)            # tabular data, float64
y = (x[:, :3].sum(1) + 0.5 * torch.randn(2000) > 0).long()
model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 2))
opt = torch.optim.Adam(model.parameters(), 1e-2)
for _ in range(200):                                       # over-fit the first 1000 rows
    opt.zero_grad()
    nn.functional.cross_entropy(model(x[:1000].float()), y[:1000]).backward()
    opt.step()

val = DataLoader(TensorDataset(x[1000:1500], y[1000:1500]), batch_size=256)
test = DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=256)
z_val, y_val = predict_logits(model, val)                  # (500, 2) float32, (500,) labels
z_test, y_test = predict_logits(model, test)               # device=None: the model's own device
cal = calibrate.TemperatureScaling().fit(z_val, y_val)
print(f"T = {cal.temperature_:.2f}")
print("ECE before", calibrate.metrics.ece(calibrate.softmax(z_test), y_test))
print("ECE after ", calibrate.metrics.ece(cal.predict_proba(z_test), y_test))

calibrated = CalibratedModel(model, cal, output="log_probs").eval()   # an nn.Module
log_p = calibrated(x[1500:].float())                       # calibrated log-probabilities
samples, _ = mc_dropout_logits(model, test, n_samples=10, seed=0)     # (10, 500, 2); BatchNorm stays frozen
