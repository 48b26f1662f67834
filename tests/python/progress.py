#!/usr/bin/python3
"""gdal.Translate into a store with a progress callback.

Usage: progress.py SOURCE TARGET [CANCEL_AT]
Prints the progress fractions GDAL reported. With CANCEL_AT, the callback returns 0 (cancel)
once the fraction reaches it; the script then checks that the copy failed with GDAL's
"interrupted" error number and prints the error message.
"""
import sys

from osgeo import gdal

gdal.UseExceptions()


def main():
    src, dst = sys.argv[1], sys.argv[2]
    cancel_at = float(sys.argv[3]) if len(sys.argv) > 3 else None
    seen = []

    def callback(fraction, message, data):
        seen.append(fraction)
        return 0 if cancel_at is not None and fraction >= cancel_at else 1

    try:
        out = gdal.Translate(dst, src, format="GRIDSTORE", creationOptions=["BLOCKSIZE=32"],
                             callback=callback)
        out = None
        print("completed")
    except RuntimeError as e:
        assert gdal.GetLastErrorNo() == gdal.CPLE_UserInterrupt, gdal.GetLastErrorNo()
        print(f"cancelled: {e}")
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    print("fractions", len(seen), seen[0], seen[-1])


if __name__ == "__main__":
    main()
