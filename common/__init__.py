"""Small pieces every room uses: one-line argument errors, whole-line streaming files."""
