"""intrepid.physics"""
