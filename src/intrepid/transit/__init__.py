"""intrepid.transit"""
