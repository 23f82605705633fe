"""intrepid.invivo"""
