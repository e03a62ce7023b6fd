"""The Loop CSV files: where they are (``locate``), their raw rows (``rows``), the checks of each
kind (``validate``), and reading a file into a checked frame (``read``). Pure: pandas and pyarrow only.
"""
