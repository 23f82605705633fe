"""intrepid.dicom"""
