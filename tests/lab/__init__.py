"""What only a machine without a container registry needs: stand-ins for the official images,
built from Debian packages (stand_ins.py, recipes in images/), and the checks that they honour
the official images' contracts (test_images.py). Used when TEMPLATE_STAND_IN_IMAGES=1;
docs/container-lab.md says why and how.
"""
