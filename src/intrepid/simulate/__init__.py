"""intrepid.simulate"""
