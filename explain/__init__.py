"""Explanations of ranked items: SHAP, Captum attributions, reasons, counterfactuals, reports."""
